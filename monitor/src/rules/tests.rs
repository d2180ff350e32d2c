//! Unit tests of the engine: parser, loader, evaluation, output.
mod dispatch;
mod falco;
mod falco_incubating;
mod falco_sandbox;
mod kernel_actions;
mod kernel_filter;
mod lang;
mod live;
mod load;
mod responses;
