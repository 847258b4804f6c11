// sqlx::migrate! embeds the migrations at build time; a new file changes no Rust source, so ask for a rebuild when
// the directory changes (as sqlx's documentation advises).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
