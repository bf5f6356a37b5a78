"""Publish like the seed's device: the AWS IoT Device SDK v2 for Python over mutual TLS.

Written the way the SDK's pubsub sample is (mtls_from_path, connect, publish, disconnect),
with the seed's flags, plus --retain (on by default: the point is a retained message):

    python docs/examples/pubsub.py --endpoint 127.0.0.1 --port 8883 \
        --cert certs/device.pem.crt --key certs/private.pem.key --root-ca certs/root-CA.crt \
        --client-id user01 --topic users/settings/user01 --count 1 --message 'hello from python!'

Needs `pip install awsiotsdk` (the test extras install it). Prints one line per PUBACK.
"""

from __future__ import annotations

import argparse
import sys

from awscrt import mqtt
from awsiot import mqtt_connection_builder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="host of the MQTT TLS listener")
    parser.add_argument("--port", type=int, default=8883)
    parser.add_argument("--cert", required=True, help="device certificate (device.pem.crt)")
    parser.add_argument("--key", required=True, help="private key (private.pem.key)")
    parser.add_argument("--root-ca", required=True, help="the CA to trust (root-CA.crt)")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--message", default="hello from python!")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--no-retain", dest="retain", action="store_false")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per step")
    args = parser.parse_args(argv)

    connection = mqtt_connection_builder.mtls_from_path(
        endpoint=args.endpoint,
        port=args.port,
        cert_filepath=args.cert,
        pri_key_filepath=args.key,
        ca_filepath=args.root_ca,
        client_id=args.client_id,
        clean_session=False,
        keep_alive_secs=30,
    )
    try:
        connection.connect().result(args.timeout)
    except Exception as error:
        print(f"connect failed: {error}", file=sys.stderr)
        return 1
    print(f"connected to {args.endpoint}:{args.port} as {args.client_id}")
    try:
        for _ in range(args.count):
            future, packet_id = connection.publish(
                topic=args.topic,
                payload=args.message,
                qos=mqtt.QoS.AT_LEAST_ONCE,
                retain=args.retain,
            )
            future.result(args.timeout)
            print(f"published {args.message!r} to {args.topic} (packet {packet_id}, acknowledged)")
    finally:
        connection.disconnect().result(args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
