"""Session-wide fixtures shared by every test directory: one sshd, one Ray, one platform, one router."""

pytest_plugins = [
    "tests.support.sshd",
    "tests.support.ray",
    "tests.support.platform",
    "tests.support.ui",
]
