package towers

// OnlineParams are the constants of the per-event online update. GlobalMean
// and Scale come from the model (TwoTower.GlobalMean, TwoTower.Scale); LR and
// L2 are the updater's choice.
type OnlineParams struct {
	// LR is the SGD learning rate on the user vector.
	LR float32
	// L2 pulls the user vector towards zero, that is the user embedding
	// towards the feature tower's output.
	L2 float32
	// GlobalMean and Scale are mu and s of the calibration.
	GlobalMean, Scale float32
	// TargetCap caps the target watch ratio (as in training); <= 0: no cap.
	TargetCap float32
}

// OnlineStep applies one SGD step for one interaction to the user vector vec
// (p_u, Dim entries, last one the user-bias residual), in place, and returns
// the prediction made before the step.
//
// dense is the user tower's output T_u(x_u) on the user's features (Dim), item
// the item embedding e_i (Dim, as exported), target the observed watch ratio
// and weight its loss weight (1, or a confidence). With a = dense + vec:
//
//	pred = GlobalMean + a[D-1] + Scale * <a[:D-1], item[:D-1]> + item[D-1]
//	loss = weight * (pred - y)^2 + L2 * |vec|^2,   y = min(target, TargetCap)
//	vec[j]   -= LR * (2 weight (pred-y) Scale item[j] + 2 L2 vec[j])   j < D-1
//	vec[D-1] -= LR * (2 weight (pred-y)               + 2 L2 vec[D-1])
//
// OnlineStep is pure apart from vec, allocation-free and deterministic; it
// panics if the three slices differ in length.
func OnlineStep(vec, dense, item []float32, target, weight float32, p OnlineParams) (pred float32) {
	D := len(vec)
	if len(dense) != D || len(item) != D || D < 2 {
		panic("towers: OnlineStep: shape mismatch")
	}
	dense, item = dense[:D], item[:D] // bounds-check elimination
	var s float32
	for j := 0; j < D-1; j++ {
		s += (dense[j] + vec[j]) * item[j]
	}
	pred = p.GlobalMean + dense[D-1] + vec[D-1] + p.Scale*s + item[D-1]
	y := target
	if p.TargetCap > 0 && y > p.TargetCap {
		y = p.TargetCap
	}
	g := 2 * weight * (pred - y)
	gs := g * p.Scale
	decay := 1 - 2*p.LR*p.L2
	for j := 0; j < D-1; j++ {
		vec[j] = decay*vec[j] - p.LR*gs*item[j]
	}
	vec[D-1] = decay*vec[D-1] - p.LR*g
	return pred
}

// OnlinePredict is OnlineStep's prediction without the update.
func OnlinePredict(vec, dense, item []float32, p OnlineParams) float32 {
	D := len(vec)
	if len(dense) != D || len(item) != D || D < 2 {
		panic("towers: OnlinePredict: shape mismatch")
	}
	var s float32
	for j := 0; j < D-1; j++ {
		s += (dense[j] + vec[j]) * item[j]
	}
	return p.GlobalMean + dense[D-1] + vec[D-1] + p.Scale*s + item[D-1]
}

// UserEmbedding writes the serving user embedding e_u = [s a[:D-1], 1] with
// a = dense + vec into dst, and returns the user bias a[D-1] (add it and
// GlobalMean to <e_u, e_i> to get the predicted watch ratio).
func UserEmbedding(dst, dense, vec []float32, scale float32) (bias float32) {
	D := len(vec)
	if len(dense) != D || len(dst) != D || D < 2 {
		panic("towers: UserEmbedding: shape mismatch")
	}
	for j := 0; j < D-1; j++ {
		dst[j] = scale * (dense[j] + vec[j])
	}
	dst[D-1] = 1
	return dense[D-1] + vec[D-1]
}
