"""Kakao Brain Karlo REST API (v2.0 / v2.1), see shared/specs/karlo-rest-api.txt."""
