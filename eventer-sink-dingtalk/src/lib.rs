//! DingTalk group-robot sink for eventer.
