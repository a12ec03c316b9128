//! The fixture builder lives in the crate (`imgroups_chatdb::testing`, feature `testing`) so
//! other crates' tests can build chat.db files too; the tests here use it through this module.

pub(crate) use imgroups_chatdb::testing::*;
