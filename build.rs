//! Compiles proto/varwatch/v1/varwatch.proto when the `grpc` feature is on,
//! with protox (a protobuf compiler in pure Rust): a fresh machine needs
//! nothing but cargo.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "grpc")]
    {
        println!("cargo:rerun-if-changed=proto");
        let fds = protox::compile(["varwatch/v1/varwatch.proto"], ["proto"])?;
        tonic_prost_build::configure()
            .build_client(true)
            .build_server(true)
            .compile_fds(fds)?;
    }
    Ok(())
}
