"""Kafka plumbing: the embedded broker and topic set-up, and the validating Avro record producer.

Depends on the domain and the codec below it; nothing in ``toogreen.domain`` imports it.
"""
