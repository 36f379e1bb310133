package pan

import "testing"

func TestReduce(t *testing.T) {
	cases := []struct{ in, bin, last4 string }{
		{"4111111111111111", "411111", "1111"},
		{"4111 1111 1111 1111", "411111", "1111"},
		{"5555-5555-5555-4444", "555555", "4444"},
		{"411111******1234", "411111", "1234"},
		{"**** **** **** 7907", "", "7907"},
		{"•••• 7907", "", "7907"},
		{"1234", "", "1234"},
	}
	for _, c := range cases {
		m := Reduce(c.in)
		if m == nil || m.BIN != c.bin || m.Last4 != c.last4 {
			t.Errorf("Reduce(%q) = %+v, want bin %q last4 %q", c.in, m, c.bin, c.last4)
		}
	}
	for _, in := range []string{"", "•••", "abc"} {
		if m := Reduce(in); m != nil {
			t.Errorf("Reduce(%q) = %+v, want nil", in, m)
		}
	}
}

func TestFind(t *testing.T) {
	text := `{"a":"4111 1111 1111 1111","b":"order 20240809151109","c":"5555555555554444","d":"411111******1111"}`
	got := Find(text)
	if len(got) != 2 || got[0] != "4111111111111111" || got[1] != "5555555555554444" {
		t.Errorf("Find = %v", got)
	}
	if Luhn("4111111111111112") {
		t.Error("Luhn accepted an invalid number")
	}
}
