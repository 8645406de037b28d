package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/streamrec/streamrec/internal/cache"
	"github.com/streamrec/streamrec/internal/towers"
)

// ItemRegistry stores the embeddings of videos registered after training;
// *cache.Store implements it.
type ItemRegistry interface {
	RegisterItem(ctx context.Context, version string, id uint32, bias float32, vec []float32) error
}

// VideoRegistration is the body of POST /v1/admin/videos: a video that
// appeared after training, with its item features: the model-input row the
// ingestor builds for every video (internal/kuairec: the encoded,
// standardised item features projected on the PCA components, the item
// tower's input), of the version's item-tower input width.
type VideoRegistration struct {
	VideoID  *Integer[uint32] `json:"video_id"`
	Features []float64        `json:"features"`
}

// RegisteredVideo is the answer of POST /v1/admin/videos.
type RegisteredVideo struct {
	VideoID      uint32 `json:"video_id"`
	ModelVersion string `json:"model_version"`
	Dim          int    `json:"dim"`
	// Servable: this replica's index holds the video now (the others load
	// it on the notice or at their next poll).
	Servable bool `json:"servable"`
}

// adminRegisterVideo embeds a video's features with the version's item tower
// (e_i = T_i(x_i), as the ingestor embeds a video unseen in training) and
// registers it under the version in Redis; every replica's item index and
// the updater reload the version's items on the notice.
func (s *Server) adminRegisterVideo(c echo.Context) error {
	var in VideoRegistration
	if err := s.readStrictJSON(c, &in, s.videoDecodeErr); err != nil {
		return err
	}
	switch {
	case in.VideoID == nil:
		return errorf(http.StatusBadRequest, CodeMissingField, "video_id", "video_id: required")
	case in.Features == nil:
		return errorf(http.StatusBadRequest, CodeMissingField, "features", "features: required")
	}
	idx := s.deps.Items.Index()
	if idx == nil {
		return errorf(http.StatusServiceUnavailable, CodeNoModel, "", "no model version is loaded yet; retry later")
	}
	cs := coldStartOf(idx)
	if cs == nil || cs.itemTower == nil || s.deps.Videos == nil {
		return errorf(http.StatusConflict, CodeNoItemTower, "", "model version %s has no item tower to embed a video with", idx.Version())
	}
	if want := cs.itemTower[0].In; len(in.Features) != want {
		return errorf(http.StatusBadRequest, CodeInvalidField, "features", "features: want %d numbers (the item tower's input of model version %s), got %d",
			want, idx.Version(), len(in.Features))
	}
	x := make([]float32, len(in.Features))
	for i, v := range in.Features {
		x[i] = float32(v)
		if !finite(x[i]) {
			return errorf(http.StatusBadRequest, CodeInvalidField, "features", "features[%d]: want a finite number (as float32)", i)
		}
	}
	id := in.VideoID.V
	if _, _, ok := idx.Item(id); ok && !idx.IsRegistered(id) {
		return errorf(http.StatusConflict, CodeVideoExists, "video_id", "video %d is an item of model version %s already", id, idx.Version())
	}
	vec := make([]float32, idx.Dim())
	towers.ApplyTower(vec, cs.itemTower, x, make([]float32, 2*cs.itemWidest))
	if !allFinite(vec) {
		return errorf(http.StatusBadRequest, CodeInvalidField, "features", "features: the item tower's output is not finite")
	}
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.ReadyTimeout)
	defer cancel()
	err := s.deps.Videos.RegisterItem(ctx, idx.Version(), id, 0, vec)
	switch {
	case errors.Is(err, cache.ErrVersionNotFound):
		return errorf(http.StatusConflict, CodeNoModel, "", "model version %s is no longer stored; retry", idx.Version())
	case err != nil && !errors.Is(err, cache.ErrAfterFlip):
		s.log.Warn("registering a video", "video", id, "err", err)
		return errorf(http.StatusServiceUnavailable, CodeModelStoreDown, "", "the model store (Redis) did not answer; retry later")
	}
	s.log.Info("video registered by an admin request", "video", id, "version", idx.Version())
	s.reload(ctx)
	out := RegisteredVideo{VideoID: id, ModelVersion: idx.Version(), Dim: idx.Dim()}
	if now := s.deps.Items.Index(); now != nil && now.Version() == idx.Version() {
		_, _, out.Servable = now.Item(id)
	}
	return c.JSON(http.StatusCreated, &out)
}

// readStrictJSON reads an admin route's JSON body (application/json, at
// most MaxBodyBytes) into v: unknown fields and trailing data are refused;
// a decode error goes through decodeErr's mapping.
func (s *Server) readStrictJSON(c echo.Context, v any, decodeErr func(error) error) error {
	if err := checkJSONContentType(c.Request().Header.Get(echo.HeaderContentType)); err != nil {
		return err
	}
	raw, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return s.decodeErr(err, -1)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := decodeNext(dec, v); err != nil {
		return decodeErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusBadRequest, CodeInvalidJSON, "", "unexpected data after the JSON value")
	}
	return nil
}

func (s *Server) videoDecodeErr(err error) error {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) && typ.Field != "" {
		want := "want an integer in [0, 4294967295]"
		if typ.Field != "video_id" {
			want = "want an array of finite numbers"
		}
		return errorf(http.StatusBadRequest, CodeInvalidField, typ.Field, "%s: %s, got %s", typ.Field, want, typ.Value)
	}
	if ae, ok := s.decodeErr(err, -1).(*Error); ok && ae.Code == CodeUnknownField {
		ae.Message = "unknown field " + ae.Field + " (allowed: video_id, features)"
		return ae
	}
	return s.decodeErr(err, -1)
}
