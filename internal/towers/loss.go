package towers

import "math"

// MSE returns the mean of (pred - target)^2 and, if grad is not nil, writes its
// gradient with respect to pred into grad: 2 (pred - target) / n.
func MSE(grad, pred, target []float64) float64 {
	return WeightedMSE(grad, pred, target, nil)
}

// WeightedMSE returns sum_i w_i (pred_i - target_i)^2 / sum_i w_i (the seed's
// confidence-weighted MSE when w are SeedConfidence values; plain MSE when w is
// nil) and, if grad is not nil, writes its gradient with respect to pred.
func WeightedMSE(grad, pred, target, w []float64) float64 {
	if len(pred) != len(target) || (w != nil && len(w) != len(pred)) || (grad != nil && len(grad) != len(pred)) {
		panic("towers: WeightedMSE: shape mismatch")
	}
	if len(pred) == 0 {
		return 0
	}
	sw := float64(len(pred))
	if w != nil {
		sw = 0
		for _, v := range w {
			sw += v
		}
	}
	loss := 0.0
	for i, p := range pred {
		wi := 1.0
		if w != nil {
			wi = w[i]
		}
		e := p - target[i]
		loss += wi * e * e
		if grad != nil {
			grad[i] = 2 * wi * e / sw
		}
	}
	return loss / sw
}

// SeedConfidence is the seed notebook's confidence of one interaction:
//
//	2.0 + 60 * log1p(watchRatioCapped) * (1 + 0.8*completionRate) * (1 + 0.5*log1p(replayFactor))
func SeedConfidence(watchRatioCapped, completionRate, replayFactor float64) float64 {
	return 2.0 + 60*math.Log1p(watchRatioCapped)*(1+0.8*completionRate)*(1+0.5*math.Log1p(replayFactor))
}

// ConfidenceFromWatchRatio evaluates SeedConfidence from a watch ratio alone,
// which is our reading of the seed's inputs: watchRatioCapped = min(wr, cap),
// completionRate = min(wr, 1) and replayFactor = max(wr - 1, 0) (the part of
// the video watched again), also capped at cap.
func ConfidenceFromWatchRatio(wr, cap float64) float64 {
	wr = max(wr, 0)
	c := min(wr, cap)
	return SeedConfidence(c, min(wr, 1), max(c-1, 0))
}

// logSigmoid returns log(1/(1+exp(-x))) without overflow.
func logSigmoid(x float64) float64 {
	if x >= 0 {
		return -math.Log1p(math.Exp(-x))
	}
	return x - math.Log1p(math.Exp(x))
}

func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// BPR returns the Bayesian personalised ranking loss of one positive score
// against k negative scores, mean over the negatives:
//
//	-(1/k) sum_j log sigmoid(pos - neg_j)
//
// and its gradients: dPos (returned) and dNeg (written, k entries; may be nil).
func BPR(dNeg []float64, pos float64, neg []float64) (loss, dPos float64) {
	if dNeg != nil && len(dNeg) != len(neg) {
		panic("towers: BPR: shape mismatch")
	}
	if len(neg) == 0 {
		return 0, 0
	}
	k := float64(len(neg))
	for j, s := range neg {
		x := pos - s
		loss -= logSigmoid(x)
		g := -sigmoid(-x) / k // d(-log sigmoid(x))/dx = -(1 - sigmoid(x))
		dPos += g
		if dNeg != nil {
			dNeg[j] = -g
		}
	}
	return loss / k, dPos
}

// SampledSoftmax returns the cross-entropy of a softmax over logits whose
// target is logits[0] (the positive; the rest are sampled negatives):
//
//	-logits[0] + log sum_j exp(logits[j])
//
// and, if grad is not nil, its gradient softmax(logits) - onehot(0).
func SampledSoftmax(grad, logits []float64) float64 {
	if grad != nil && len(grad) != len(logits) {
		panic("towers: SampledSoftmax: shape mismatch")
	}
	if len(logits) == 0 {
		panic("towers: SampledSoftmax: no logits")
	}
	m := logits[0]
	for _, v := range logits {
		m = max(m, v)
	}
	s := 0.0
	for _, v := range logits {
		s += math.Exp(v - m)
	}
	lse := m + math.Log(s)
	if grad != nil {
		for j, v := range logits {
			grad[j] = math.Exp(v - lse)
		}
		grad[0]--
	}
	return lse - logits[0]
}
