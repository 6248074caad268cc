# -*- test-case-name: tests.test_media_sdes -*-
"""sbc.media.core.sdes: RFC 4568 crypto attribute parsing, choice and rendering."""

from __future__ import annotations

import base64

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.media.core.sdes import (
    KEY_LENGTHS,
    MAX_LIFETIME,
    SUITES,
    SrtpKeying,
    choose,
    crypto_value,
    match_answer,
    new_keying,
    parse_crypto_value,
)

# The key of the RFC 4568 examples: 40 base64 characters, 30 bytes.
RFC_KEY = b"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"
CM80 = "AES_CM_128_HMAC_SHA1_80"


def b64(n: int, fill: int = 0x41) -> bytes:
    return base64.b64encode(bytes([fill]) * n)


def keyings() -> st.SearchStrategy[SrtpKeying]:
    lifetimes = st.one_of(
        st.none(),
        st.integers(1, MAX_LIFETIME),
        st.integers(0, 48).map(lambda n: 2**n),
    )
    return st.sampled_from(SUITES).flatmap(
        lambda suite: st.builds(
            SrtpKeying,
            st.just(suite),
            st.binary(min_size=KEY_LENGTHS[suite], max_size=KEY_LENGTHS[suite]),
            lifetimes,
        )
    )


class KeyLengthTests(SynchronousTestCase):
    def test_lengths_per_suite(self) -> None:
        # RFC 4568 §6.2: AES-CM 128-bit key + 112-bit salt; RFC 7714: 96-bit salt for GCM.
        self.assertEqual(
            [KEY_LENGTHS[s] for s in SUITES],
            [30, 30, 28, 44],
        )

    def test_new_keying_lengths_and_randomness(self) -> None:
        for suite in SUITES:
            a, b = new_keying(suite), new_keying(suite)
            self.assertEqual(a.suite, suite)
            self.assertEqual(len(a.key), KEY_LENGTHS[suite])
            self.assertIsNone(a.lifetime)
            self.assertNotEqual(a.key, b.key)

    def test_new_keying_unknown_suite(self) -> None:
        self.assertRaises(ValueError, new_keying, "F8_128_HMAC_SHA1_80")


class ReprTests(SynchronousTestCase):
    def test_key_never_in_repr(self) -> None:
        keying = SrtpKeying(CM80, b"\x01" * 30)
        text = repr(keying) + str(keying)
        self.assertNotIn(repr(keying.key), text)
        self.assertNotIn(base64.b64encode(keying.key).decode(), text)
        self.assertNotIn("key=", text)
        self.assertIn(CM80, text)

    def test_parsed_key_not_in_repr(self) -> None:
        parsed = parse_crypto_value(b"1 " + CM80.encode() + b" inline:" + RFC_KEY)
        assert parsed is not None
        self.assertNotIn("WVNf", repr(parsed))
        self.assertNotIn(repr(parsed[1].key), repr(parsed))


class ParseTests(SynchronousTestCase):
    def parse(self, value: bytes) -> tuple[int, SrtpKeying] | None:
        return parse_crypto_value(value)

    def test_rfc_example_without_mki(self) -> None:
        parsed = self.parse(b"1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + b"|2^20")
        self.assertEqual(parsed, (1, SrtpKeying(CM80, base64.b64decode(RFC_KEY), 2**20)))

    def test_each_suite(self) -> None:
        for suite in SUITES:
            n = KEY_LENGTHS[suite]
            parsed = self.parse(b"42 %s inline:%s" % (suite.encode(), b64(n)))
            self.assertEqual(parsed, (42, SrtpKeying(suite, b"A" * n)), suite)

    def test_mki_refused(self) -> None:
        self.assertIsNone(self.parse(b"1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + b"|2^20|1:4"))
        self.assertIsNone(self.parse(b"1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + b"|1:4"))

    def test_several_keys_refused(self) -> None:
        self.assertIsNone(
            self.parse(
                b"1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + b"|2^20|1:4;inline:" + RFC_KEY + b"|2^20|2:4"
            )
        )
        self.assertIsNone(self.parse(b"1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + b";inline:" + RFC_KEY))

    def test_lifetimes(self) -> None:
        base = b"1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + b"|"
        cases = {
            b"2^31": 2**31,
            b"2^48": 2**48,
            b"2^0": 1,
            b"1048576": 2**20,
            b"1000": 1000,
            b"281474976710656": 2**48,
        }
        for text, expected in cases.items():
            parsed = self.parse(base + text)
            assert parsed is not None, text
            self.assertEqual(parsed[1].lifetime, expected, text)
        for bad in (b"2^49", b"281474976710657", b"0", b"2^", b"", b"2^-1", b"x", b"2^100", b"9" * 5000):
            self.assertIsNone(self.parse(base + bad), bad)

    def test_wrong_key_length(self) -> None:
        for suite in SUITES:
            n = KEY_LENGTHS[suite]
            for wrong in (n - 1, n + 1, 0 if n != 30 else 28):
                value = b"1 %s inline:%s" % (suite.encode(), b64(wrong))
                self.assertIsNone(self.parse(value), (suite, wrong))
        # A GCM-128 key (28 bytes) offered under an AES-CM suite (30 bytes), and vice versa.
        self.assertIsNone(self.parse(b"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64(28)))
        self.assertIsNone(self.parse(b"1 AEAD_AES_128_GCM inline:" + RFC_KEY))

    def test_bad_base64(self) -> None:
        for key in (RFC_KEY[:-1] + b"!", RFC_KEY[:20] + b" " + RFC_KEY[20:], b"====" + RFC_KEY, b"", RFC_KEY + b"="):
            self.assertIsNone(self.parse(b"1 AES_CM_128_HMAC_SHA1_80 inline:" + key), key)

    def test_missing_padding_tolerated(self) -> None:
        padded = b64(28)
        self.assertTrue(padded.endswith(b"=="))
        parsed = self.parse(b"1 AEAD_AES_128_GCM inline:" + padded.rstrip(b"="))
        self.assertEqual(parsed, (1, SrtpKeying("AEAD_AES_128_GCM", b"A" * 28)))

    def test_unknown_suite_and_method(self) -> None:
        for value in (
            b"1 AES_256_CM_HMAC_SHA1_80 inline:" + b64(46),
            b"1 F8_128_HMAC_SHA1_80 inline:" + RFC_KEY,
            b"1 NULL_HMAC_SHA1_80 inline:" + RFC_KEY,
            b"1 AES_CM_128_HMAC_SHA1_80 uri:" + RFC_KEY,
            b"1 AES_CM_128_HMAC_SHA1_80 " + RFC_KEY,
        ):
            self.assertIsNone(self.parse(value), value)

    def test_case_insensitive_literals(self) -> None:
        parsed = self.parse(b"3 aes_cm_128_hmac_sha1_32 INLINE:" + RFC_KEY)
        self.assertEqual(parsed, (3, SrtpKeying("AES_CM_128_HMAC_SHA1_32", base64.b64decode(RFC_KEY))))

    def test_tag(self) -> None:
        key = b" AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY
        self.assertEqual(self.parse(b"999999999" + key)[0], 999_999_999)  # type: ignore[index]
        self.assertEqual(self.parse(b"0" + key)[0], 0)  # type: ignore[index]
        for bad in (b"1000000000", b"-1", b"a", b"1.0", b""):
            self.assertIsNone(self.parse(bad + key), bad)

    def test_whitespace(self) -> None:
        parsed = self.parse(b"  1 \t AES_CM_128_HMAC_SHA1_80   inline:" + RFC_KEY + b" \t")
        self.assertEqual(parsed, (1, SrtpKeying(CM80, base64.b64decode(RFC_KEY))))
        self.assertIsNone(self.parse(b"1 AES_CM_128_HMAC_SHA1_80\r\ninline:" + RFC_KEY))
        self.assertIsNone(self.parse(b"1 AES_CM_128_HMAC_SHA1_80"))

    def test_session_params_refused(self) -> None:
        line = b"1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + b" "
        for param in (
            b"UNENCRYPTED_SRTP",
            b"UNENCRYPTED_SRTCP",
            b"UNAUTHENTICATED_SRTP",
            b"unencrypted_srtp",
            b"KDR=1",
            b"KDR=24",
            b"KDR=000",
            b"KDR",
            b"FEC_ORDER=SRTP_FEC",
            b"FEC_KEY=inline:" + RFC_KEY,
            b"WSH=60",
            b"WSH=",
            b"WSH=1" + b"0" * 20,
            b"SSRC=0xDD148F16",
            b"-",
        ):
            self.assertIsNone(self.parse(line + param), param)
        # One bad parameter among good ones still spoils the line.
        self.assertIsNone(self.parse(line + b"KDR=0 UNENCRYPTED_SRTCP WSH=128"))

    def test_session_params_accepted(self) -> None:
        line = b"1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + b" "
        for params in (b"KDR=0", b"KDR=00", b"WSH=64", b"WSH=1024", b"FEC_ORDER=FEC_SRTP", b"-SSRC=0x1 -ROC=0", b"KDR=0 WSH=128"):
            parsed = self.parse(line + params)
            self.assertEqual(parsed, (1, SrtpKeying(CM80, base64.b64decode(RFC_KEY))), params)

    def test_non_ascii_and_wrong_type(self) -> None:
        self.assertIsNone(self.parse(b"1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + b" \xff"))
        self.assertIsNone(self.parse(b"1 AES_CM_128_HMAC_SHA1_80\x00 inline:" + RFC_KEY))
        self.assertIsNone(parse_crypto_value("1 AES_CM_128_HMAC_SHA1_80 inline:x"))  # type: ignore[arg-type]

    @given(st.binary(max_size=200))
    def test_arbitrary_bytes_never_raise(self, data: bytes) -> None:
        result = parse_crypto_value(data)
        self.assertTrue(result is None or isinstance(result[1], SrtpKeying))

    @given(
        st.lists(
            st.sampled_from(
                [b"1", b"AES_CM_128_HMAC_SHA1_80", b"AEAD_AES_256_GCM", b"inline:", RFC_KEY, b"|", b"2^",
                 b"20", b":", b";", b" ", b"\t", b"=", b"KDR=", b"WSH=", b"-", b"UNENCRYPTED_SRTP", b"\xc3"]
            ),
            max_size=12,
        )
    )
    def test_token_soup_never_raises(self, tokens: list[bytes]) -> None:
        result = parse_crypto_value(b"".join(tokens))
        self.assertTrue(result is None or len(result[1].key) == KEY_LENGTHS[result[1].suite])


class RenderTests(SynchronousTestCase):
    def test_render(self) -> None:
        keying = SrtpKeying(CM80, base64.b64decode(RFC_KEY))
        self.assertEqual(crypto_value(1, keying), b"1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY)

    def test_render_lifetime(self) -> None:
        key = base64.b64decode(RFC_KEY)
        self.assertEqual(
            crypto_value(2, SrtpKeying(CM80, key, 2**31)),
            b"2 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + b"|2^31",
        )
        self.assertEqual(
            crypto_value(2, SrtpKeying(CM80, key, 1000)),
            b"2 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + b"|1000",
        )

    def test_render_bad_tag(self) -> None:
        keying = new_keying(CM80)
        self.assertRaises(ValueError, crypto_value, -1, keying)
        self.assertRaises(ValueError, crypto_value, 10**9, keying)

    def test_render_bad_keying(self) -> None:
        for keying in (
            SrtpKeying("NULL_HMAC_SHA1_80", b"x" * 30),
            SrtpKeying(CM80, b"x" * 28),
            SrtpKeying(CM80, b"x" * 30, 0),
            SrtpKeying(CM80, b"x" * 30, MAX_LIFETIME + 1),
        ):
            error = self.assertRaises(ValueError, crypto_value, 1, keying)
            self.assertNotIn("xxxx", str(error))

    @given(st.integers(0, 999_999_999), keyings())
    def test_round_trip(self, tag: int, keying: SrtpKeying) -> None:
        self.assertEqual(parse_crypto_value(crypto_value(tag, keying)), (tag, keying))

    def test_round_trip_fresh_keys(self) -> None:
        for tag, suite in enumerate(SUITES, 1):
            keying = new_keying(suite)
            self.assertEqual(parse_crypto_value(crypto_value(tag, keying)), (tag, keying))


class ChooseTests(SynchronousTestCase):
    def line(self, tag: int, suite: str, extra: bytes = b"") -> bytes:
        return b"%d %s inline:%s%s" % (tag, suite.encode(), b64(KEY_LENGTHS.get(suite, 30), 0x30 + tag), extra)

    def test_first_acceptable_in_offer_order(self) -> None:
        offer = [self.line(1, "AEAD_AES_256_GCM"), self.line(2, CM80), self.line(3, "AES_CM_128_HMAC_SHA1_32")]
        chosen = choose(offer)
        assert chosen is not None
        self.assertEqual((chosen[0], chosen[1].suite), (1, "AEAD_AES_256_GCM"))

    def test_suites_filter_but_do_not_reorder(self) -> None:
        offer = [self.line(1, "AEAD_AES_256_GCM"), self.line(2, "AES_CM_128_HMAC_SHA1_32"), self.line(3, CM80)]
        chosen = choose(offer, suites=(CM80, "AES_CM_128_HMAC_SHA1_32"))
        assert chosen is not None
        self.assertEqual((chosen[0], chosen[1].suite), (2, "AES_CM_128_HMAC_SHA1_32"))

    def test_unusable_lines_skipped(self) -> None:
        offer = [
            self.line(1, CM80, b"|2^20|1:4"),  # MKI
            self.line(2, CM80, b" UNENCRYPTED_SRTP"),
            self.line(3, "AES_256_CM_HMAC_SHA1_80"),  # unknown suite
            b"4 AES_CM_128_HMAC_SHA1_80 inline:!!!!",  # bad base64
            self.line(5, "AES_CM_128_HMAC_SHA1_32", b"|2^31"),
            self.line(6, CM80),
        ]
        chosen = choose(offer)
        assert chosen is not None
        self.assertEqual((chosen[0], chosen[1].suite, chosen[1].lifetime), (5, "AES_CM_128_HMAC_SHA1_32", 2**31))
        self.assertEqual(chosen[1].key, b"5" * 30)

    def test_nothing_usable(self) -> None:
        self.assertIsNone(choose([]))
        self.assertIsNone(choose([self.line(1, CM80, b"|1:4")]))
        self.assertIsNone(choose([self.line(1, CM80)], suites=("AEAD_AES_128_GCM",)))
        self.assertIsNone(choose([self.line(1, CM80)], suites=()))

    @given(st.lists(st.binary(max_size=80), max_size=5))
    def test_choose_arbitrary_never_raises(self, offered: list[bytes]) -> None:
        chosen = choose(offered)
        self.assertTrue(chosen is None or chosen[1].suite in SUITES)


class MatchAnswerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.offered = {1: new_keying("AEAD_AES_128_GCM"), 2: new_keying(CM80)}

    def test_accepted_line(self) -> None:
        theirs = new_keying(CM80)
        matched = match_answer(self.offered, [crypto_value(2, theirs)])
        self.assertEqual(matched, (self.offered[2], theirs))

    def test_refused(self) -> None:
        theirs_cm, theirs_gcm = new_keying(CM80), new_keying("AEAD_AES_128_GCM")
        for answered in (
            [],  # no crypto in the answer
            [crypto_value(3, theirs_cm)],  # a tag we never offered
            [crypto_value(1, theirs_cm)],  # our tag 1 was GCM, not AES-CM
            [crypto_value(2, theirs_cm), crypto_value(1, theirs_gcm)],  # more than one
            [crypto_value(2, theirs_cm) + b" UNENCRYPTED_SRTP"],  # a parameter we cannot honour
            [b"2 AES_CM_128_HMAC_SHA1_80 inline:" + RFC_KEY + b"|2^20|1:4"],  # MKI
        ):
            self.assertIsNone(match_answer(self.offered, answered), answered)
