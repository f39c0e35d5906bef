#!/usr/bin/env python3
"""The broker's throughput for a stock librdkafka client (`make bench`).

Creates a fresh topic, sends it MESSAGES keyed records of about SIZE bytes with an
idempotent producer (enable.idempotence, acks=all, every other setting librdkafka's
default), then reads them back with a consumer assigned to every partition from the
beginning, and prints one JSON object:

  {"produce_msgs_per_s": …, "consume_msgs_per_s": …, "messages": …, …}

This is the ceiling the services' own Kafka traffic is compared with: the same broker,
the same storage, a client nobody here tuned. Needs confluent-kafka (which bundles a
current librdkafka; tools/dev/bench.sh installs it into a venv in the project's cache).
"""

import argparse
import json
import os
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka import libversion
from confluent_kafka import version as client_version
from confluent_kafka.admin import AdminClient, NewTopic


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", required=True, help="bootstrap servers, e.g. 127.0.0.1:19092")
    parser.add_argument("--messages", type=int, default=100_000, help="records to send (default 100000)")
    parser.add_argument("--size", type=int, default=300, help="value bytes per record (default 300)")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of the fresh topic (default 3)")
    parser.add_argument("--topic", default=None, help="topic name (default: a fresh ocop.bench.raw.<time>)")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds per phase")
    parser.add_argument("--keep-topic", action="store_true", help="do not delete the topic afterwards")
    return parser.parse_args()


def progress(message):
    print(f"[{time.strftime('%H:%M:%S')}] kafka_bench: {message}", file=sys.stderr, flush=True)


def create_topic(admin, topic, partitions, timeout):
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    futures[topic].result(timeout=timeout)
    # The topic is usable once its metadata lists every partition.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        meta = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
        if meta is not None and meta.error is None and len(meta.partitions) == partitions:
            return
        time.sleep(0.1)
    raise RuntimeError(f"topic {topic} did not show {partitions} partitions in its metadata")


def produce(brokers, topic, count, size, timeout):
    producer = Producer(
        {
            "bootstrap.servers": brokers,
            "enable.idempotence": True,
            "acks": "all",
            "client.id": "ocop-kafka-bench",
        }
    )
    producer.list_topics(topic=topic, timeout=10)  # connected before the clock starts
    failures = []

    def delivered(err, _msg):
        if err is not None:
            failures.append(str(err))

    body = os.urandom(size)
    started = time.monotonic()
    deadline = started + timeout
    for i in range(count):
        key = b"order-%08d" % i
        value = b"%08d" % i + body[8:]
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.05)
                if time.monotonic() > deadline:
                    raise RuntimeError("producing took longer than the timeout")
        if i % 1000 == 0:
            producer.poll(0)
    left = producer.flush(max(1.0, deadline - time.monotonic()))
    elapsed = time.monotonic() - started
    if left:
        raise RuntimeError(f"{left} records still undelivered after the timeout")
    if failures:
        raise RuntimeError(f"{len(failures)} records failed, the first: {failures[0]}")
    return elapsed


def consume(brokers, topic, partitions, count, timeout):
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"{topic}.reader",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "client.id": "ocop-kafka-bench",
        }
    )
    # Assigned, not subscribed: the time measured is reading, not a group join.
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    seen = 0
    first = None
    started = time.monotonic()
    deadline = started + timeout
    try:
        while seen < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"read {seen} of {count} records before the timeout")
            for msg in consumer.consume(num_messages=10_000, timeout=1.0):
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                if first is None:
                    first = time.monotonic() - started
                seen += 1
        return time.monotonic() - started, first
    finally:
        consumer.close()


def main():
    args = parse_args()
    topic = args.topic or f"ocop.bench.raw.{int(time.time() * 1000)}"
    admin = AdminClient({"bootstrap.servers": args.brokers})
    create_topic(admin, topic, args.partitions, args.timeout)
    progress(f"producing {args.messages} records of {args.size} bytes to {topic} ({args.partitions} partitions)")
    produce_s = produce(args.brokers, topic, args.messages, args.size, args.timeout)
    progress(f"produced in {produce_s:.1f} s; reading them back")
    consume_s, first_s = consume(args.brokers, topic, args.partitions, args.messages, args.timeout)
    progress(f"read in {consume_s:.1f} s")
    if not args.keep_topic:
        try:
            admin.delete_topics([topic])[topic].result(timeout=30)
        except Exception as err:  # the figures stand either way
            progress(f"could not delete {topic}: {err}")
    client = client_version()
    client = client if isinstance(client, str) else client[0]  # a (str, int) tuple before 2.x
    print(
        json.dumps(
            {
                "client": f"confluent-kafka {client}, librdkafka {libversion()[0]}",
                "librdkafka": libversion()[0],
                "topic": topic,
                "partitions": args.partitions,
                "messages": args.messages,
                "message_bytes": args.size,
                "produce_s": round(produce_s, 3),
                "produce_msgs_per_s": round(args.messages / produce_s, 1),
                "produce_mib_per_s": round(args.messages * args.size / produce_s / 2**20, 2),
                "consume_s": round(consume_s, 3),
                "consume_first_record_s": round(first_s, 3),
                # From the first record on: the read rate, not the fetcher's start-up.
                "consume_msgs_per_s": round(args.messages / max(consume_s - first_s, 1e-3), 1),
            }
        )
    )


if __name__ == "__main__":
    try:
        main()
    except Exception as err:
        progress(f"failed: {err}")
        sys.exit(1)
