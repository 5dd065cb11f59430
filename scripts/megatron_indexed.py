#!/usr/bin/env python3
"""An independent reader and writer of Megatron-LM's indexed dataset (.bin/.idx), written from the
format's description with Python's standard library only, to check paratrain's TypeScript one both
ways (test/data/indexed-dataset.test.ts).

  python3 scripts/megatron_indexed.py write PREFIX < {"dtype": 8, "documents": [[[ids...], ...], ...]}
  python3 scripts/megatron_indexed.py read PREFIX   > {"version", "dtype", "sequence_lengths",
                                                       "sequence_pointers", "document_indices", "sequences"}

.idx: b"MMIDIDX\\x00\\x00", <Q version (1), <B dtype code, <Q sequence count, <Q count of document
indices (documents + 1), then int32 lengths, int64 byte offsets, int64 document indices.
.bin: the tokens back to back in the dtype.
"""
import json
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


if __name__ == "__main__":
    command, prefix = sys.argv[1], sys.argv[2]
    if command == "write":
        write(prefix, json.load(sys.stdin))
    elif command == "read":
        json.dump(read(prefix), sys.stdout)
    else:
        sys.exit("usage: megatron_indexed.py write|read PREFIX")
