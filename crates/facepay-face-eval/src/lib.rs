//! Measuring the face engine honestly: verification error rates over
//! labelled photos.

pub mod verify;
