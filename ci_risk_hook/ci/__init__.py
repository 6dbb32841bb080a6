"""Running ci-risk as a CI step: detecting the CI system, deepening shallow clones, CI outputs."""
