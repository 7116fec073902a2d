// message_of<E>(f): runs f, requires that it throws E, and returns the message so that tests can
// check what the user would read. Any other exception fails the test case.
#pragma once
#include <string>

#include <catch2/catch.hpp>

template <typename E, typename F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("expected an exception, none was thrown");
  return {};
}
