package events

import "testing"

func TestIndexIsThePositionInTypes(t *testing.T) {
	types := Types()
	if len(types) != NumTypes {
		t.Fatalf("Types lists %d types, NumTypes is %d", len(types), NumTypes)
	}
	for i, ty := range types {
		if got := ty.Index(); got != i {
			t.Errorf("%s.Index() = %d, want %d", ty, got, i)
		}
	}
	if got := Type("com.example.unknown").Index(); got != -1 {
		t.Errorf("unknown type's Index() = %d, want -1", got)
	}
}
