package augment

import (
	"fmt"
	"slices"

	"github.com/edgeloop/edgeloop/pkg/nn"
)

// Mirroring says, by class name, what a left–right mirror (flip_h) does to a project's
// classes: the class-level counterpart of Ultralytics' flip_idx, which says it of
// keypoints. Flips themselves are project-wide (flip_h's and flip_v's probabilities);
// Mirroring makes them happen only where allowed. A class in neither list looks the
// same mirrored (a circle, a car) and is flipped as itself. flip_v turns an image upside
// down, which Mirroring does not describe: it skips an image showing a Never class and
// swaps no pair (a left-arrow upside down is still a left-arrow); leave flip_v off for
// classes whose meaning changes upside down (triangles, stars, letters).
type Mirroring struct {
	// Never are classes no flip may mirror (letters, digits, signs): an image that
	// shows one, as its label or in a box, is not flipped, left–right or upside down.
	Never []string `json:"never,omitempty"`
	// Pairs are classes that are each other's left–right mirror image (left-arrow,
	// right-arrow): a horizontal flip swaps them in the image's label and boxes; a
	// vertical flip keeps them.
	Pairs [][2]string `json:"pairs,omitempty"`
}

// Resolve checks m against a project's classes, in class order, and returns it by
// class index. A class that is not one of them, a class paired with itself, in two
// pairs, or both in a pair and in Never is refused with an error naming the setting
// (mirror.never, mirror.pairs) and the class.
func (m Mirroring) Resolve(classes []string) (Mirror, error) {
	if len(m.Never) == 0 && len(m.Pairs) == 0 {
		return Mirror{}, nil
	}
	index := make(map[string]int, len(classes))
	for i, c := range classes {
		index[c] = i
	}
	out := Mirror{never: make([]bool, len(classes)), swap: make([]int, len(classes))}
	for i := range out.swap {
		out.swap[i] = i
	}
	for _, c := range m.Never {
		k, ok := index[c]
		if !ok {
			return Mirror{}, fmt.Errorf("mirror.never: class %q is not one of the project's classes", c)
		}
		out.never[k] = true
	}
	for _, p := range m.Pairs {
		if p[0] == p[1] {
			return Mirror{}, fmt.Errorf("mirror.pairs: class %q is paired with itself (a class that mirrors as itself needs no pair)", p[0])
		}
		var k [2]int
		for j, c := range p {
			i, ok := index[c]
			switch {
			case !ok:
				return Mirror{}, fmt.Errorf("mirror.pairs: class %q is not one of the project's classes", c)
			case out.never[i]:
				return Mirror{}, fmt.Errorf("mirror.pairs: class %q is in a pair and in mirror.never: a class is either never mirrored or mirrors into its pair", c)
			case out.swap[i] != i:
				return Mirror{}, fmt.Errorf("mirror.pairs: class %q is in two pairs (%q and %q)", c, classes[out.swap[i]], p[1-j])
			}
			k[j] = i
		}
		out.swap[k[0]], out.swap[k[1]] = k[1], k[0]
	}
	return out, nil
}

// Without returns m without class: taken out of Never and its pair dropped, for a class
// removed from a project.
func (m Mirroring) Without(class string) Mirroring {
	out := Mirroring{}
	for _, c := range m.Never {
		if c != class {
			out.Never = append(out.Never, c)
		}
	}
	for _, p := range m.Pairs {
		if p[0] != class && p[1] != class {
			out.Pairs = append(out.Pairs, p)
		}
	}
	return out
}

// Mirror is a Mirroring by class index (Mirroring.Resolve). The zero Mirror lets every
// class be mirrored as itself.
type Mirror struct {
	// never marks the classes no flip may mirror.
	never []bool
	// swap is each class's mirror image: itself, or its pair.
	swap []int
}

// Allows reports whether a flip, horizontal or vertical, may mirror an image of class k
// (a negative k: no class).
func (m Mirror) Allows(k int) bool {
	return k < 0 || k >= len(m.never) || !m.never[k]
}

// Class is the class of class k's horizontal mirror image: its pair's, or its own.
func (m Mirror) Class(k int) int {
	if k < 0 || k >= len(m.swap) {
		return k
	}
	return m.swap[k]
}

// allowsAll reports whether a flip may mirror an image of class label showing boxes.
func (m Mirror) allowsAll(label int, boxes []nn.Box) bool {
	if !m.Allows(label) {
		return false
	}
	return !slices.ContainsFunc(boxes, func(b nn.Box) bool { return !m.Allows(b.Class) })
}

// swapped returns the label and boxes as a horizontal flip shows them: paired classes
// swapped (the boxes a copy when one changes; their coordinates are moved elsewhere).
func (m Mirror) swapped(label int, boxes []nn.Box) (int, []nn.Box) {
	if m.swap == nil {
		return label, boxes
	}
	out, copied := boxes, false
	for i, b := range boxes {
		if c := m.Class(b.Class); c != b.Class {
			if !copied {
				out, copied = slices.Clone(boxes), true
			}
			out[i].Class = c
		}
	}
	return m.Class(label), out
}
