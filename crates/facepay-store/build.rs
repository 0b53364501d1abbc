// `sqlx::migrate!` embeds the migrations when this crate compiles; without
// this line a new migration file alone would not make Cargo compile it
// again, and a binary would start without that migration.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
