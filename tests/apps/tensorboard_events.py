"""An independent reader of TensorBoard event files, for test_run_logs: TFRecord framing checked with
its own CRC-32C, Event/Summary protobufs decoded by hand (no tensorflow, tensorboard or protobuf
package needed; when google.protobuf is importable its wire decoder cross-checks ours).

  tensorboard_events.py dump DIR            → JSON: {"file_version": …, "scalars": [{tag, step, value, wall_time}]}
  tensorboard_events.py check DIR RUN_LOG   → compares the scalars with the log's iteration and validation lines
"""
import glob
import json
import math
import os
import re
import struct
import sys
import time


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError(f"{path}: truncated record header at byte {pos}")
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if length_crc != masked(header):
            raise ValueError(f"{path}: bad length CRC at byte {pos}")
        body = data[pos + 12:pos + 12 + length]
        if len(body) != length or pos + 16 + length > len(data):
            raise ValueError(f"{path}: truncated record at byte {pos}")
        (data_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        if data_crc != masked(body):
            raise ValueError(f"{path}: bad data CRC at byte {pos}")
        yield body
        pos += 16 + length


def varint(buf, pos):
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


def fields(buf):
    """(field number, wire type, value) of a message: ints for varints, bytes for the others."""
    pos, out = 0, []
    while pos < len(buf):
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unexpected wire type {wire}")
        out.append((number, wire, value))
    if pos != len(buf):
        raise ValueError("message overruns its length")
    return out


def cross_check(body, parsed):
    try:
        from google.protobuf.internal import decoder  # noqa: F401
    except ImportError:
        return
    # Only the wire decoding is compared: varints through protobuf's own decoder.
    from google.protobuf.internal.decoder import _DecodeVarint
    pos = 0
    for number, wire, _ in parsed:
        key, pos = _DecodeVarint(body, pos)
        assert key == (number << 3 | wire)
        if wire == 0:
            _, pos = _DecodeVarint(body, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            n, pos = _DecodeVarint(body, pos)
            pos += n
        elif wire == 5:
            pos += 4


def read_dir(folder):
    files = sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*")))
    if not files:
        raise ValueError(f"no events.out.tfevents.* in {folder}")
    result = {"files": [os.path.basename(f) for f in files], "file_version": None, "scalars": []}
    for path in files:
        for i, body in enumerate(records(path)):
            event = fields(body)
            cross_check(body, event)
            wall_time = step = None
            for number, wire, value in event:
                if number == 1 and wire == 1:
                    (wall_time,) = struct.unpack("<d", value)
                elif number == 2 and wire == 0:
                    step = value - (1 << 64) if value >= 1 << 63 else value
                elif number == 3 and wire == 2:
                    if i != 0:
                        raise ValueError(f"{path}: file_version in record {i}, not the first")
                    result["file_version"] = value.decode()
                elif number == 5 and wire == 2:
                    for vn, vw, v in fields(value):
                        if vn != 1 or vw != 2:
                            raise ValueError(f"{path}: unexpected Summary field {vn}")
                        tag = simple = None
                        for fn, fw, f in fields(v):
                            if fn == 1 and fw == 2:
                                tag = f.decode()
                            elif fn == 2 and fw == 5:
                                (simple,) = struct.unpack("<f", f)
                        result["scalars"].append({"tag": tag, "step": step, "value": simple, "wall_time": wall_time})
            if wall_time is None or abs(wall_time - time.time()) > 86400:
                raise ValueError(f"{path}: record {i} has wall_time {wall_time}")
    return result


def close(a, b, rel, abs_=0.0):
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), abs_)


def check(folder, log_path):
    events = read_dir(folder)
    if events["file_version"] != "brain.Event:2":
        raise SystemExit(f"file_version {events['file_version']!r}")
    scalars = {}
    for s in events["scalars"]:
        scalars.setdefault(s["tag"], {})[s["step"]] = s["value"]
    iteration_re = re.compile(r"\biteration\s+(\d+)\s*/\s*(\d+)\s*\|(.*)$")
    validation_re = re.compile(r"validation loss at iteration (\d+)\s*\|(.*)$")
    checked, errors = 0, []

    def expect(tag, step, value, rel, abs_=0.0):
        nonlocal checked
        got = scalars.get(tag, {}).get(step)
        if got is None:
            errors.append(f"no scalar {tag!r} at step {step}")
        elif not close(got, value, rel, abs_):
            errors.append(f"{tag!r} at step {step}: {got} in the event file, {value} in the log")
        checked += 1

    lines, previous = 0, 0
    with open(log_path) as f:
        for line in f:
            m = validation_re.search(line)
            if m:
                it = int(m.group(1))
                for field in m.group(2).split("|"):
                    if ":" not in field:
                        continue
                    key, value = (x.strip() for x in field.rsplit(":", 1))
                    if key.endswith(" value"):
                        expect(key[:-6] + " validation", it, float(value), 1e-5)
                    elif key.endswith(" PPL"):
                        expect(key[:-4] + " validation ppl", it, float(value), 1e-4, 1e-3)
                continue
            m = iteration_re.search(line)
            if not m:
                continue
            lines += 1
            it = int(m.group(1))
            f = {}
            for field in m.group(3).split("|"):
                if ":" in field:
                    key, value = (x.strip() for x in field.rsplit(":", 1))
                    f[key] = value
            samples = int(f["consumed samples"])
            # Each iteration's own losses are in the file (tensorboard_log_interval 1); the line
            # prints their mean over its window, the iterations since the previous line.
            window = range(previous + 1, it + 1)
            previous = it
            for key, value in f.items():
                if key.endswith(" loss"):
                    own = [scalars.get(key, {}).get(step) for step in window]
                    if None in own:
                        errors.append(f"{key!r}: no scalar at some of steps {list(window)}")
                        continue
                    mean = sum(own) / len(own)
                    if not close(mean, float(value), 1e-5, 0.0):
                        errors.append(f"{key!r} over steps {list(window)}: mean {mean} in the event file, {value} in the log")
                    checked += 1
                    expect(key + " vs samples", samples, own[-1], 1e-7)
            expect("learning-rate", it, float(f["learning rate"]), 1e-3)
            expect("learning-rate vs samples", samples, float(f["learning rate"]), 1e-3)
            expect("grad-norm", it, float(f["grad norm"]), 1e-5)
            expect("batch-size", it, float(f["global batch size"]), 0)
            expect("loss-scale", it, float(f.get("loss scale", 1.0)), 1e-6)
            expect("iteration-time", it, float(f["elapsed time per iteration (ms)"]) / 1000.0, 0, 6e-5)
    if lines == 0:
        errors.append(f"{log_path} has no iteration lines")
    if errors:
        raise SystemExit("\n".join(errors))
    print(f"{len(events['scalars'])} scalars in {events['files']}; {checked} compared with {lines} iteration lines of "
          f"{log_path}: equal")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "dump":
        print(json.dumps(read_dir(sys.argv[2])))
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
