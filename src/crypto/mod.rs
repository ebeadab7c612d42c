//! The crypto provider: the only module that names a crypto library.
pub mod cipher;
