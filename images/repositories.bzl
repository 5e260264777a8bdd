"""Repositories of the pinned Debian packages of the images in images/ (call from WORKSPACE)."""

load("//images:prometheus_packages.bzl", "PROMETHEUS_PACKAGES")
load("//images:rabbitmq_packages.bzl", "RABBITMQ_PACKAGES")
load("//images:redis_packages.bzl", "REDIS_PACKAGES")
load("//images:worker_packages.bzl", "WORKER_PACKAGES")
load("//tools/debian:defs.bzl", "debian_packages", "pins")

def conveyor_image_repositories():
    """Declares @debian_redis, @debian_rabbitmq, @debian_prometheus and @debian_worker (each
    exposes `:debs`; @debian_worker holds what the worker base image adds to @debian_python)."""
    debian_packages(name = "debian_redis", packages = pins(REDIS_PACKAGES))
    debian_packages(name = "debian_rabbitmq", packages = pins(RABBITMQ_PACKAGES))
    debian_packages(name = "debian_prometheus", packages = pins(PROMETHEUS_PACKAGES))
    debian_packages(name = "debian_worker", packages = pins(WORKER_PACKAGES))
