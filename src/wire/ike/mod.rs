//! IKEv2 message codec (RFC 7296 §3, RFC 7383 SKF).
