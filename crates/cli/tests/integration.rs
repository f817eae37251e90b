//! Integration tests: the real `lifeboat` binary on real file trees.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod integration {
    mod backup_restore;
    mod cli;
    pub mod common;
    mod copy;
    mod exporter;
    mod faults;
    mod first_hour;
    mod maintenance;
    mod mariadb;
    mod mariadb_pitr;
    mod notify;
    mod plan;
    mod postgres;
    mod redis;
    pub mod serve;
    mod sqlite;
}
