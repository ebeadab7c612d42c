//! The `cgwd` binary: a thin shell over [`cgwd::cli`].

fn main() -> std::process::ExitCode {
    cgwd::cli::main()
}
