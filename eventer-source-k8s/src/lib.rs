//! Kubernetes Events source for eventer: list/watch with nothing lost across reconnects and restarts.
