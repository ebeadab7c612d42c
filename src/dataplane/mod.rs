//! Data-plane workers joining the TUN device, ESP and the UDP sockets.
