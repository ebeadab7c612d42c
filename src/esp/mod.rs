//! ESP data plane core (RFC 4303 tunnel mode, RFC 3948 UDP encapsulation): seal, open, replay, SA table.
