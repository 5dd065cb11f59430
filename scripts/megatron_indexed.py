#!/usr/bin/env python3
"""An independent reader and writer of Megatron-LM's indexed dataset (.bin/.idx), written from the
format's description with Python's standard library only, to check paratrain's TypeScript one both
ways (test/data/indexed-dataset.test.ts).

  python3 scripts/megatron_indexed.py write PREFIX < {"dtype": 8, "documents": [[[ids...], ...], ...]}
  python3 scripts/megatron_indexed.py read PREFIX   > {"version", "dtype", "sequence_lengths",
                                                       "sequence_pointers", "document_indices", "sequences"}

At scale (scripts/check-megatron-compat.mjs), without holding the tokens in memory:

  python3 scripts/megatron_indexed.py verify PREFIX  > the counts and digests below, after checking
      the header, that every offset is the end of the sequence before, that the document indices run
      from 0 to the sequence count in order, and that .bin is exactly as long as the index says
  python3 scripts/megatron_indexed.py write-synthetic PREFIX DOCUMENTS LOW HIGH EOD SEED > the same
      digests: DOCUMENTS documents of 200 to 1,799 ids in [LOW, HIGH) each, then EOD; uint16

Digests (sha256, hex): "tokens" of every sequence's ids in order as little-endian int32 (so that
uint16 and int32 data of the same ids agree), "lengths" of the int32 lengths, "pointers" and
"document_indices" of the int64 arrays, each as stored in .idx.

.idx: b"MMIDIDX\\x00\\x00", <Q version (1), <B dtype code, <Q sequence count, <Q count of document
indices (documents + 1), then int32 lengths, int64 byte offsets, int64 document indices.
.bin: the tokens back to back in the dtype.
"""
import hashlib
import json
import os
import random
import struct
import sys
from array import array

MAGIC = b"MMIDIDX\x00\x00"
# dtype code -> (struct format letter, bytes)
DTYPES = {1: ("B", 1), 2: ("b", 1), 3: ("h", 2), 4: ("i", 4), 5: ("q", 8), 8: ("H", 2)}


def write(prefix, spec):
    code = spec["dtype"]
    letter, size = DTYPES[code]
    lengths, pointers, document_indices = [], [], [0]
    offset = 0
    with open(prefix + ".bin", "wb") as bin_file:
        for document in spec["documents"]:
            for sequence in document:
                bin_file.write(struct.pack("<%d%s" % (len(sequence), letter), *sequence))
                lengths.append(len(sequence))
                pointers.append(offset)
                offset += len(sequence) * size
            document_indices.append(len(lengths))
    with open(prefix + ".idx", "wb") as idx_file:
        idx_file.write(MAGIC)
        idx_file.write(struct.pack("<Q", 1))
        idx_file.write(struct.pack("<B", code))
        idx_file.write(struct.pack("<Q", len(lengths)))
        idx_file.write(struct.pack("<Q", len(document_indices)))
        idx_file.write(struct.pack("<%di" % len(lengths), *lengths))
        idx_file.write(struct.pack("<%dq" % len(pointers), *pointers))
        idx_file.write(struct.pack("<%dq" % len(document_indices), *document_indices))


def read(prefix):
    with open(prefix + ".idx", "rb") as idx_file:
        data = idx_file.read()
    assert data[:9] == MAGIC, "bad magic"
    (version,) = struct.unpack_from("<Q", data, 9)
    (code,) = struct.unpack_from("<B", data, 17)
    sequences, index_count = struct.unpack_from("<QQ", data, 18)
    at = 34
    lengths = list(struct.unpack_from("<%di" % sequences, data, at))
    at += 4 * sequences
    pointers = list(struct.unpack_from("<%dq" % sequences, data, at))
    at += 8 * sequences
    document_indices = list(struct.unpack_from("<%dq" % index_count, data, at))
    at += 8 * index_count
    assert at == len(data), "trailing bytes in .idx"
    letter, size = DTYPES[code]
    with open(prefix + ".bin", "rb") as bin_file:
        tokens = bin_file.read()
    out = []
    for length, pointer in zip(lengths, pointers):
        out.append(list(struct.unpack_from("<%d%s" % (length, letter), tokens, pointer)))
    return {
        "version": version,
        "dtype": code,
        "sequence_lengths": lengths,
        "sequence_pointers": pointers,
        "document_indices": document_indices,
        "sequences": out,
    }


def int_array(letter, data):
    values = array(letter)
    values.frombytes(data)
    if sys.byteorder != "little":
        values.byteswap()
    return values


def le_bytes(values):
    if sys.byteorder != "little":
        values = array(values.typecode, values)
        values.byteswap()
    return values.tobytes()


def verify(prefix):
    with open(prefix + ".idx", "rb") as idx_file:
        data = idx_file.read()
    if data[:9] != MAGIC:
        sys.exit("%s.idx: bad magic" % prefix)
    (version,) = struct.unpack_from("<Q", data, 9)
    (code,) = struct.unpack_from("<B", data, 17)
    sequences, index_count = struct.unpack_from("<QQ", data, 18)
    if version != 1 or code not in DTYPES:
        sys.exit("%s.idx: version %d, dtype %d" % (prefix, version, code))
    if len(data) != 34 + 12 * sequences + 8 * index_count:
        sys.exit("%s.idx: %d bytes for %d sequences" % (prefix, len(data), sequences))
    letter, size = DTYPES[code]
    at = 34
    lengths = int_array("i", data[at : at + 4 * sequences])
    at += 4 * sequences
    pointers = int_array("q", data[at : at + 8 * sequences])
    at += 8 * sequences
    document_indices = int_array("q", data[at:])
    offset = 0
    for s in range(sequences):
        if pointers[s] != offset or lengths[s] < 0:
            sys.exit("%s.idx: sequence %d at byte %d, expected %d" % (prefix, s, pointers[s], offset))
        offset += lengths[s] * size
    if document_indices[0] != 0 or document_indices[-1] != sequences:
        sys.exit("%s.idx: document indices from %d to %d" % (prefix, document_indices[0], document_indices[-1]))
    for d in range(1, index_count):
        if document_indices[d] < document_indices[d - 1]:
            sys.exit("%s.idx: document index %d decreases" % (prefix, d))
    if os.path.getsize(prefix + ".bin") != offset:
        sys.exit("%s.bin: %d bytes, the index says %d" % (prefix, os.path.getsize(prefix + ".bin"), offset))
    # The sequences lie back to back from byte 0 (checked above): stream .bin in order.
    digest = hashlib.sha256()
    tokens = 0
    with open(prefix + ".bin", "rb") as bin_file:
        while True:
            chunk = bin_file.read((64 << 20) // size * size)
            if not chunk:
                break
            ids = int_array(letter, chunk)
            tokens += len(ids)
            digest.update(le_bytes(array("i", ids)))
    return {
        "dtype": code,
        "sequences": sequences,
        "documents": index_count - 1,
        "tokens": tokens,
        "tokens_sha256": digest.hexdigest(),
        "lengths_sha256": hashlib.sha256(le_bytes(lengths)).hexdigest(),
        "pointers_sha256": hashlib.sha256(le_bytes(pointers)).hexdigest(),
        "document_indices_sha256": hashlib.sha256(le_bytes(document_indices)).hexdigest(),
    }


def write_synthetic(prefix, documents, low, high, eod, seed):
    """Documents of pseudo-random ids, written as they are made: one document in memory at a time."""
    rng = random.Random(seed)
    pool = array("H", (rng.randrange(low, high) for _ in range(1 << 20)))
    lengths = array("i")
    pointers = array("q")
    digest = hashlib.sha256()
    offset = 0
    with open(prefix + ".bin", "wb") as bin_file:
        for _ in range(documents):
            length = rng.randrange(200, 1800)
            start = rng.randrange(0, len(pool) - length)
            ids = pool[start : start + length]
            ids.append(eod)
            bin_file.write(le_bytes(ids))
            digest.update(le_bytes(array("i", ids)))
            lengths.append(len(ids))
            pointers.append(offset)
            offset += 2 * len(ids)
    document_indices = array("q", range(documents + 1))
    with open(prefix + ".idx", "wb") as idx_file:
        idx_file.write(MAGIC)
        idx_file.write(struct.pack("<QBQQ", 1, 8, documents, documents + 1))
        idx_file.write(le_bytes(lengths))
        idx_file.write(le_bytes(pointers))
        idx_file.write(le_bytes(document_indices))
    return {
        "dtype": 8,
        "sequences": documents,
        "documents": documents,
        "tokens": offset // 2,
        "tokens_sha256": digest.hexdigest(),
        "lengths_sha256": hashlib.sha256(le_bytes(lengths)).hexdigest(),
        "pointers_sha256": hashlib.sha256(le_bytes(pointers)).hexdigest(),
        "document_indices_sha256": hashlib.sha256(le_bytes(document_indices)).hexdigest(),
    }


if __name__ == "__main__":
    command, prefix = sys.argv[1], sys.argv[2]
    if command == "write":
        write(prefix, json.load(sys.stdin))
    elif command == "read":
        json.dump(read(prefix), sys.stdout)
    elif command == "verify":
        json.dump(verify(prefix), sys.stdout)
    elif command == "write-synthetic":
        json.dump(write_synthetic(prefix, *map(int, sys.argv[3:8])), sys.stdout)
    else:
        sys.exit("usage: megatron_indexed.py write|read|verify|write-synthetic PREFIX ...")
