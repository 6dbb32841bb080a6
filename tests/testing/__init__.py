"""Helpers the tests share: real repositories made in temp dirs, and a real model trained on one."""
