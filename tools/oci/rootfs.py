"""Generated entries every image needs: users and groups, ``/tmp``, the non-root home."""

from __future__ import annotations

from dataclasses import dataclass

from tools.oci.tree import LayerTree

__all__ = ["User", "add_rootfs_basics"]


@dataclass(frozen=True)
class User:
    """The non-root account the image runs as (distroless uses ``nonroot``, 65532)."""

    name: str = "nonroot"
    uid: int = 65532
    gid: int = 65532
    home: str = "/home/nonroot"


def add_rootfs_basics(tree: LayerTree, user: User) -> None:
    """Adds ``/etc/passwd``, ``/etc/group``, ``/tmp`` (1777), ``/root`` and ``user``'s home."""
    passwd = (
        "root:x:0:0:root:/root:/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
        f"{user.name}:x:{user.uid}:{user.gid}:{user.name}:{user.home}:/sbin/nologin\n"
    )
    group = f"root:x:0:\nnogroup:x:65534:\n{user.name}:x:{user.gid}:\n"
    tree.add_file("etc/passwd", passwd.encode(), 0o644)
    tree.add_file("etc/group", group.encode(), 0o644)
    tree.add_dir("tmp", 0o1777)
    tree.add_dir("root", 0o700)
    tree.add_dir(user.home, 0o700, uid=user.uid, gid=user.gid)
