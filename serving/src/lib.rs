//! The HTTP translation service.
