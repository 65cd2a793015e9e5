// diampool: human-readable rendering of messages and AVPs.
#pragma once

#include <string>

#include "diampool/dictionary.hpp"
#include "diampool/message.hpp"

namespace diampool {

/// Renders a message as an indented AVP tree with names, types and decoded values from
/// `dict`. Unknown AVPs are shown by code with their bytes in hex; a malformed AVP ends the
/// listing with a line saying what is wrong (the rendering itself never fails).
std::string to_text(const message_view& msg, const dictionary& dict = dictionary::base());

/// Renders one AVP (and its children, if grouped) on lines indented by `indent` spaces.
std::string to_text(const avp& a, const dictionary& dict = dictionary::base(), int indent = 0);

/// Lower-case hex of `bytes`, no separators.
std::string to_hex(std::span<const std::uint8_t> bytes);

/// Parses hex (whitespace, ':' and an optional 0x prefix ignored). Empty with `ok` false on an
/// odd count or a non-hex character.
std::vector<std::uint8_t> from_hex(std::string_view text, bool& ok);

}  // namespace diampool
