//! mDNS
