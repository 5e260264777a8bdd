"""protoc from grpcio-tools (the lock's), with the well-known types on the include path."""

from grpc_tools import protoc

if __name__ == "__main__":
    protoc.entrypoint()
