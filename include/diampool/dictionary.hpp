// diampool: the AVP and command dictionary.
//
// A dictionary maps AVP codes (with vendor) and command codes to names, types and flag rules,
// so messages can be built and printed by name. dictionary::base() holds RFC 6733; an
// application dictionary is a copy of it with more entries added.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "diampool/message.hpp"
#include "diampool/types.hpp"

namespace diampool {

/// What a flag must be in an AVP (RFC 6733 section 4.5 "AVP Flag rules").
enum class flag_rule : std::uint8_t { must, may, must_not };

/// A named value of an Enumerated AVP (or of an Unsigned32 with well-known values, such as
/// Result-Code).
struct enum_value {
  std::int64_t value = 0;
  std::string name;
};

/// One AVP of the dictionary.
struct avp_definition {
  std::uint32_t code = 0;
  std::uint32_t vendor_id = 0;  ///< Non-zero: the V flag is set and Vendor-ID carried.
  std::string name;
  avp_type type = avp_type::octet_string;
  flag_rule m_rule = flag_rule::must;
  std::vector<enum_value> values;  ///< Named values, if any.

  /// Flags a sender sets: V when vendor-specific, M unless the rule says must_not or may.
  std::uint8_t default_flags() const noexcept;

  /// The name of `v` among `values`, or empty.
  std::string_view value_name(std::int64_t v) const noexcept;
};

/// One command: a request and its answer share the code.
struct command_definition {
  std::uint32_t code = 0;
  std::string name;          ///< "Capabilities-Exchange" (without -Request/-Answer).
  std::string request_abbr;  ///< "CER"
  std::string answer_abbr;   ///< "CEA"
  std::uint32_t application_id = 0;
  bool proxiable = false;  ///< Whether requests carry the P flag.
};

/// One application.
struct application_definition {
  std::uint32_t id = 0;
  std::string name;
};

/// A set of AVP, command and application definitions with lookups by code and by name.
/// Lookups are const and thread-safe; adding is not thread-safe with concurrent lookups.
/// Pointers returned stay valid until the dictionary is destroyed.
class dictionary {
 public:
  dictionary() = default;
  dictionary(const dictionary& other);
  dictionary& operator=(const dictionary& other);
  dictionary(dictionary&&) noexcept = default;
  dictionary& operator=(dictionary&&) noexcept = default;
  ~dictionary() = default;

  /// The RFC 6733 base protocol: every base AVP, command and the common applications.
  static const dictionary& base();

  /// Adds or replaces (same code and vendor / same code) a definition.
  void add(avp_definition def);
  void add(command_definition def);
  void add(application_definition def);

  /// Adds every definition of `other`, replacing those with the same keys.
  void merge(const dictionary& other);

  const avp_definition* find_avp(std::uint32_t code, std::uint32_t vendor_id = 0) const noexcept {
    if (vendor_id == 0 && code < direct_codes) {
      return code < avp_by_small_code_.size() ? avp_by_small_code_[code] : nullptr;
    }
    return find_avp_by_key(key(code, vendor_id));
  }
  /// By name, case-sensitive ("Origin-Host").
  const avp_definition* find_avp(std::string_view name) const noexcept;

  const command_definition* find_command(std::uint32_t code) const noexcept;
  /// By name or abbreviation ("Capabilities-Exchange", "CER", "CEA").
  const command_definition* find_command(std::string_view name) const noexcept;

  const application_definition* find_application(std::uint32_t id) const noexcept;

  std::size_t avp_count() const noexcept { return avps_.size(); }
  std::size_t command_count() const noexcept { return commands_.size(); }

  /// Every AVP definition, in the order added.
  const std::deque<avp_definition>& avps() const noexcept { return avps_; }
  const std::deque<command_definition>& commands() const noexcept { return commands_; }

 private:
  static std::uint64_t key(std::uint32_t code, std::uint32_t vendor) noexcept {
    return (std::uint64_t{vendor} << 32) | code;
  }
  const avp_definition* find_avp_by_key(std::uint64_t key) const noexcept;
  void reindex();
  void index_avp(const avp_definition& d);

  // IETF AVPs (vendor 0) with small codes, by code: the lookup every received message makes
  // for each of its AVPs (check_avps) is an index, not a hash. Null where none is defined.
  static constexpr std::uint32_t direct_codes = 1024;

  std::deque<avp_definition> avps_;
  std::deque<command_definition> commands_;
  std::deque<application_definition> applications_;
  std::vector<const avp_definition*> avp_by_small_code_;
  std::unordered_map<std::uint64_t, const avp_definition*> avp_by_code_;
  std::unordered_map<std::string_view, const avp_definition*> avp_by_name_;
  std::unordered_map<std::uint32_t, const command_definition*> command_by_code_;
  std::unordered_map<std::string_view, const command_definition*> command_by_name_;
  std::unordered_map<std::uint32_t, const application_definition*> application_by_id_;
};

/// Walks every AVP of `msg`, descending into the AVPs `dict` says are Grouped, and returns the
/// first structural error (bad lengths, overruns, missing padding, nesting beyond
/// `max_depth`). Values are not checked. A receiver runs this before trusting a message.
std::error_code check_avps(const message_view& msg, const dictionary& dict,
                           unsigned max_depth = default_max_avp_depth) noexcept;

}  // namespace diampool
