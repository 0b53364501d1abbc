//! Measuring the face engine honestly: verification error rates over
//! labelled photos, and presentation-attack error rates over labelled
//! sequences (with a generator of such sequences from real photos).

pub mod liveness;
pub mod sequences;
pub mod synthetic;
pub mod verify;
pub mod video;
