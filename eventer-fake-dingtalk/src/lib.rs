//! A loopback fake DingTalk group robot for eventer's tests.
