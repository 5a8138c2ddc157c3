package nn

import (
	"fmt"
	"math"
)

// FoldBatchNorm returns the inference form of a network: every batch norm that reads a
// conv, and is that conv's only reader, is folded into the conv, which gets a bias:
// w′ = w·γ/√(σ²+ε), b′ = (b − μ)·γ/√(σ²+ε) + β, with the running statistics μ, σ².
// The result computes what a's inference computes with fewer layers and no buffers,
// for serving; it is not for training (its batch norms are gone).
func FoldBatchNorm(a Arch, p *Params) (Arch, *Params, error) {
	nodes, specs, err := a.Graph()
	if err != nil {
		return Arch{}, nil, err
	}
	if len(p.Values) != len(specs) {
		return Arch{}, nil, fmt.Errorf("fold %s: %d tensors, the architecture has %d", a.Name, len(p.Values), len(specs))
	}
	readers := make([]int, len(nodes))
	for _, n := range nodes {
		for _, j := range n.In {
			if j != Input {
				readers[j]++
			}
		}
	}
	// folded[i] is the conv a folded batch norm i becomes; newIndex maps old layers to new.
	folded := map[int]int{}
	for i, n := range nodes {
		if n.Kind == BatchNorm && n.In[0] != Input && nodes[n.In[0]].Kind == Conv && readers[n.In[0]] == 1 {
			folded[i] = n.In[0]
		}
	}
	newIndex := make([]int, len(nodes))
	next := 0
	for i := range nodes {
		if c, ok := folded[i]; ok {
			newIndex[i] = newIndex[c]
			continue
		}
		newIndex[i] = next
		next++
	}
	out := a
	out.Name = a.Name + "-folded"
	out.Layers = nil
	foldedInto := map[int]int{} // conv → its batch norm
	for i, c := range folded {
		foldedInto[c] = i
	}
	for i, n := range nodes {
		if _, ok := folded[i]; ok {
			continue
		}
		l := n.Layer
		if _, ok := foldedInto[i]; ok {
			l.NoBias = false
		}
		if len(l.From) > 0 {
			l.From = make([]int, len(n.In))
			for k, j := range n.In {
				if j == Input {
					l.From[k] = Input
				} else {
					l.From[k] = newIndex[j]
				}
			}
		}
		out.Layers = append(out.Layers, l)
	}
	out.HeadFrom = newIndex[a.HeadFrom]
	out.Levels = nil
	for _, l := range a.Levels {
		out.Levels = append(out.Levels, Level{Stride: l.Stride, Obj: newIndex[l.Obj], Box: newIndex[l.Box], Cls: newIndex[l.Cls]})
	}
	outNodes, _, err := out.Graph()
	if err != nil {
		return Arch{}, nil, fmt.Errorf("fold %s: %w", a.Name, err)
	}
	q, err := NewParams(out)
	if err != nil {
		return Arch{}, nil, err
	}
	for i, n := range nodes {
		if _, ok := folded[i]; ok {
			continue
		}
		dst := outNodes[newIndex[i]].Params
		bn, ok := foldedInto[i]
		if !ok {
			for k, src := range n.Params {
				copy(q.Values[dst[k]], p.Values[src])
			}
			continue
		}
		bp := nodes[bn].Params
		g, beta, mean, variance := p.Values[bp[0]], p.Values[bp[1]], p.Values[bp[2]], p.Values[bp[3]]
		eps := float64(nodes[bn].BNEps())
		w, nw, nb := p.Values[n.Params[0]], q.Values[dst[0]], q.Values[dst[1]]
		per := len(w) / n.Out[0]
		for o := 0; o < n.Out[0]; o++ {
			k := float64(g[o]) / math.Sqrt(float64(variance[o])+eps)
			for j := o * per; j < (o+1)*per; j++ {
				nw[j] = float32(float64(w[j]) * k)
			}
			var b float64
			if !n.NoBias {
				b = float64(p.Values[n.Params[1]][o])
			}
			nb[o] = float32((b-float64(mean[o]))*k + float64(beta[o]))
		}
	}
	return out, q, nil
}
