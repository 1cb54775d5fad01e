//! Alibaba Cloud Log Service (SLS) sink for eventer.
