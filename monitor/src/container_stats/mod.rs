pub mod activity;
