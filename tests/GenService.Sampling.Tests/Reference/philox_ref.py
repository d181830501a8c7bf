"""Independent numpy implementation of Philox4x32-10 and GenService's NoiseStream (docs/reproducibility.md).

Written from Salmon et al., "Parallel random numbers: as easy as 1, 2, 3" (SC'11) and the Random123 headers'
constants; used by make_reference.py to write Fixtures/noise.json, which the C# tests match.
"""
import numpy as np

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = np.uint64(0xFFFFFFFF)


def philox4x32_10(ctr, key):
    """ctr: uint64 array [..., 4] of 32-bit words; key: (k0, k1). Returns uint64 array [..., 4] of 32-bit words."""
    c = [np.asarray(ctr[..., i], dtype=np.uint64) for i in range(4)]
    k0, k1 = int(key[0]), int(key[1])
    for r in range(10):
        p0 = M0 * c[0]
        p1 = M1 * c[2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK
        c = [hi1 ^ c[1] ^ np.uint64(k0), lo1, hi0 ^ c[3] ^ np.uint64(k1), lo0]
        k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
    return np.stack(c, axis=-1)


def words(seed, sample_index, stream_id, n):
    """The first n 32-bit words of stream (seed, sample_index, stream_id): block b's counter is
    (b, stream_id, sample_index lo, sample_index hi), the key (seed lo, seed hi); words in order x0..x3."""
    blocks = (n + 3) // 4
    ctr = np.zeros((blocks, 4), dtype=np.uint64)
    ctr[:, 0] = np.arange(blocks, dtype=np.uint64)
    ctr[:, 1] = stream_id
    ctr[:, 2] = sample_index & 0xFFFFFFFF
    ctr[:, 3] = sample_index >> 32
    return philox4x32_10(ctr, (seed & 0xFFFFFFFF, seed >> 32)).reshape(-1)[:n]


def uniforms(seed, sample_index, stream_id, n):
    """[0, 1): top 24 bits of each word times 2^-24 (exact in float32)."""
    return ((words(seed, sample_index, stream_id, n) >> np.uint64(8)).astype(np.float64) * 2.0 ** -24).astype(np.float32)


def normals(seed, sample_index, stream_id, n):
    """Box-Muller on word pairs (w[2k], w[2k+1]): u1 = ((w>>8) + 0.5) 2^-24 in (0, 1), u2 = (w>>8) 2^-24,
    r = sqrt(-2 ln u1), z[2k] = r cos(2 pi u2), z[2k+1] = r sin(2 pi u2); computed in float64, rounded to float32."""
    m = (n + 1) // 2
    w = (words(seed, sample_index, stream_id, 2 * m) >> np.uint64(8)).astype(np.float64).reshape(m, 2)
    u1 = (w[:, 0] + 0.5) * 2.0 ** -24
    u2 = w[:, 1] * 2.0 ** -24
    r = np.sqrt(-2.0 * np.log(u1))
    z = np.stack([r * np.cos(2 * np.pi * u2), r * np.sin(2 * np.pi * u2)], axis=1).reshape(-1)
    return z[:n].astype(np.float32)


def truncated_normals(seed, sample_index, stream_id, n, bound):
    """The normal sequence with every |z| > bound skipped."""
    k = 4 * n + 64
    while True:
        z = normals(seed, sample_index, stream_id, k)
        kept = z[np.abs(z.astype(np.float64)) <= bound]
        if len(kept) >= n:
            return kept[:n]
        k *= 2


if __name__ == "__main__":
    kat = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
         (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ]
    for ctr, key, want in kat:
        got = philox4x32_10(np.array([ctr], dtype=np.uint64), key)[0]
        print([hex(int(x)) for x in got], "ok" if tuple(int(x) for x in got) == want else "MISMATCH")
