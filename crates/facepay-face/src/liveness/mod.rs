//! Presentation attack detection: multi-frame geometry, depth, and a pluggable PAD model.
