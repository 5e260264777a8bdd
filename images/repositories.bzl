"""Repositories of the broker and monitoring images' pinned Debian packages (call from WORKSPACE)."""

load("//images:prometheus_packages.bzl", "PROMETHEUS_PACKAGES")
load("//images:rabbitmq_packages.bzl", "RABBITMQ_PACKAGES")
load("//images:redis_packages.bzl", "REDIS_PACKAGES")
load("//tools/debian:defs.bzl", "debian_packages", "pins")

def conveyor_image_repositories():
    """Declares @debian_redis, @debian_rabbitmq and @debian_prometheus (each exposes `:debs`)."""
    debian_packages(name = "debian_redis", packages = pins(REDIS_PACKAGES))
    debian_packages(name = "debian_rabbitmq", packages = pins(RABBITMQ_PACKAGES))
    debian_packages(name = "debian_prometheus", packages = pins(PROMETHEUS_PACKAGES))
