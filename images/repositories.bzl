"""Repositories of the broker images' pinned Debian packages (call from WORKSPACE)."""

load("//images:rabbitmq_packages.bzl", "RABBITMQ_PACKAGES")
load("//images:redis_packages.bzl", "REDIS_PACKAGES")
load("//tools/debian:defs.bzl", "debian_packages", "pins")

def conveyor_image_repositories():
    """Declares @debian_redis and @debian_rabbitmq (each exposes `:debs`)."""
    debian_packages(name = "debian_redis", packages = pins(REDIS_PACKAGES))
    debian_packages(name = "debian_rabbitmq", packages = pins(RABBITMQ_PACKAGES))
