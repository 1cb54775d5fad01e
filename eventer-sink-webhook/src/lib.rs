//! Webhook sink (WIP).
mod data;
mod gotmpl;
mod render;
