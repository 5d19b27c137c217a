"""Money: ISO 4217 exponents, unknown codes refused, no mixing of currencies."""

from decimal import Decimal

import pytest

from payments.domain.errors import CurrencyMismatch, InvalidAmount, InvalidCurrency
from payments.domain.money import MAX_AMOUNT_MINOR, Money, exponent_of


@pytest.mark.parametrize(("code", "exponent"), [("JPY", 0), ("USD", 2), ("EUR", 2), ("KWD", 3), ("BHD", 3)])
def test_currencies_have_their_iso_4217_exponent(code, exponent):
    assert exponent_of(code) == exponent


@pytest.mark.parametrize("code", ["XYZ", "eur", "", "EURO", "US"])
def test_unknown_currency_codes_are_refused(code):
    with pytest.raises(InvalidCurrency) as caught:
        Money(100, code)
    assert caught.value.reason == "INVALID_CURRENCY"


def test_major_units_convert_with_the_currency_exponent():
    assert Money.from_decimal("12.50", "USD") == Money(1250, "USD")
    assert Money.from_decimal("1500", "JPY") == Money(1500, "JPY")
    assert Money.from_decimal("1.234", "KWD") == Money(1234, "KWD")
    assert Money(1234, "KWD").to_decimal() == Decimal("1.234")
    assert str(Money(5, "USD")) == "0.05 USD" and str(Money(5, "JPY")) == "5 JPY"
    with pytest.raises(InvalidAmount):
        Money.from_decimal("1.5", "JPY")


def test_request_amounts_must_be_positive_and_bounded():
    assert Money.of(1, "EUR").amount_minor == 1
    for bad in (0, -1, MAX_AMOUNT_MINOR + 1):
        with pytest.raises(InvalidAmount):
            Money.of(bad, "EUR")


def test_amounts_in_different_currencies_do_not_mix():
    with pytest.raises(CurrencyMismatch):
        Money(1, "EUR") + Money(1, "USD")
    assert Money(3, "EUR") - Money(1, "EUR") == Money(2, "EUR")
