package cache

import "errors"

// Sentinel errors. Methods wrap them with %w and context; test with errors.Is.
var (
	// ErrNoModel: no model version has been published (no current pointer).
	ErrNoModel = errors.New("cache: no model version published")
	// ErrVersionNotFound: the model version does not exist (never published,
	// not complete yet, or garbage collected).
	ErrVersionNotFound = errors.New("cache: model version not found")
	// ErrVersionExists: Publish of a version that is already complete.
	// Versions are immutable; publish a new version instead.
	ErrVersionExists = errors.New("cache: model version already exists")
	// ErrNoPrevious: Rollback with no previous version to flip back to.
	ErrNoPrevious = errors.New("cache: no previous model version")
	// ErrCorrupt: a stored value does not decode.
	ErrCorrupt = errors.New("cache: corrupt value")
	// ErrInvalid: an argument is invalid (bad version name, shape mismatch...).
	ErrInvalid = errors.New("cache: invalid argument")
)
