//! A loopback fake kube-apiserver (Events list/watch, ConfigMaps, Leases) for eventer's tests.
