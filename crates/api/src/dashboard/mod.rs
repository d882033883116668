//! The web dashboard `graft run` serves at `/`, on the API's own origin:
//! its pages and scripts are built into the binary ([`assets`]), sign-in
//! is a signed `POST /v1/session` made in the browser or a one-time login
//! link ([`login`]), and it reads what it draws through the API plus a
//! few endpoints made for it ([`reads`]: chart series, file excerpts).
//!
//! The pages are plain JavaScript modules and CSS checked in under
//! `crates/api/dashboard/`: no build step, no CDN, no network beyond this
//! server. Every changing action goes through the same guard as any API
//! request (session cookie plus CSRF token).

pub mod assets;
pub mod login;
pub mod reads;

pub use login::LoginLinks;
