//! A loopback fake Alibaba Cloud SLS endpoint for eventer's tests.
