"""check_value: what an override from YAML or --set may be for each parameter type (no rclpy)."""
import pytest

from store_common.params import check_value, ParameterError


def test_an_integer_for_a_float_parameter_is_that_float():
    value = check_value('hold_s', 1.0, 2, lo=0.0, hi=30.0)
    assert value == 2.0 and isinstance(value, float)


@pytest.mark.parametrize('given, said', [('2', "the string '2'"), ('fast', "the string 'fast'"),
                                         (True, 'the bool true'), (None, 'no value')])
def test_a_non_number_for_a_float_parameter_is_refused_naming_it(given, said):
    with pytest.raises(ParameterError) as exc:
        check_value('hold_s', 1.0, given)
    assert str(exc.value) == f'parameter hold_s: expected a number (e.g. 1.5), got {said}'


def test_other_types_are_not_coerced():
    with pytest.raises(ParameterError, match='parameter port: expected an integer, got the '
                                             'float 8080.5'):
        check_value('port', 8080, 8080.5)
    with pytest.raises(ParameterError, match='parameter record: expected true or false'):
        check_value('record', False, 1)
    with pytest.raises(ParameterError, match=r'parameter store_file: expected a string .*'
                                             r'the integer 12'):
        check_value('store_file', '', 12)
    assert check_value('port', 8080, 9000) == 9000
    assert check_value('record', False, True) is True


def test_range_and_choices():
    with pytest.raises(ParameterError, match=r'parameter hold_s=31.0 is outside its range '
                                             r'\[0, 30\]'):
        check_value('hold_s', 1.0, 31, lo=0.0, hi=30.0)
    with pytest.raises(ParameterError, match='parameter hold_s: expected a number, got NaN'):
        check_value('hold_s', 1.0, float('nan'), lo=0.0, hi=30.0)
    with pytest.raises(ParameterError, match='parameter mode=.x. is not one of a, b'):
        check_value('mode', 'a', 'x', choices=('a', 'b'))
    assert check_value('mode', 'a', 'b', choices=('a', 'b')) == 'b'
