#include "diampool/dictionary.hpp"

#include "diampool/avp.hpp"
#include "diampool/error.hpp"

namespace diampool {

std::uint8_t avp_definition::default_flags() const noexcept {
  std::uint8_t f = m_rule == flag_rule::must ? avp_flags::mandatory : 0;
  if (vendor_id != 0) f |= avp_flags::vendor;
  return f;
}

std::string_view avp_definition::value_name(std::int64_t v) const noexcept {
  for (const auto& e : values) {
    if (e.value == v) return e.name;
  }
  return {};
}

dictionary::dictionary(const dictionary& other)
    : avps_(other.avps_), commands_(other.commands_), applications_(other.applications_) {
  reindex();
}

dictionary& dictionary::operator=(const dictionary& other) {
  if (this != &other) {
    avps_ = other.avps_;
    commands_ = other.commands_;
    applications_ = other.applications_;
    reindex();
  }
  return *this;
}

void dictionary::index_avp(const avp_definition& d) {
  avp_by_code_[key(d.code, d.vendor_id)] = &d;
  avp_by_name_[d.name] = &d;
  if (d.vendor_id == 0 && d.code < direct_codes) {
    if (d.code >= avp_by_small_code_.size()) avp_by_small_code_.resize(d.code + 1, nullptr);
    avp_by_small_code_[d.code] = &d;
  }
}

void dictionary::reindex() {
  avp_by_small_code_.clear();
  avp_by_code_.clear();
  avp_by_name_.clear();
  command_by_code_.clear();
  command_by_name_.clear();
  application_by_id_.clear();
  for (const auto& d : avps_)
    index_avp(d);
  for (const auto& c : commands_) {
    command_by_code_[c.code] = &c;
    command_by_name_[c.name] = &c;
    if (!c.request_abbr.empty()) command_by_name_[c.request_abbr] = &c;
    if (!c.answer_abbr.empty()) command_by_name_[c.answer_abbr] = &c;
  }
  for (const auto& a : applications_)
    application_by_id_[a.id] = &a;
}

void dictionary::add(avp_definition def) {
  if (auto it = avp_by_code_.find(key(def.code, def.vendor_id)); it != avp_by_code_.end()) {
    *const_cast<avp_definition*>(it->second) = std::move(def);
    reindex();  // names may have changed
    return;
  }
  index_avp(avps_.emplace_back(std::move(def)));
}

void dictionary::add(command_definition def) {
  if (auto it = command_by_code_.find(def.code); it != command_by_code_.end()) {
    *const_cast<command_definition*>(it->second) = std::move(def);
    reindex();
    return;
  }
  const auto& c = commands_.emplace_back(std::move(def));
  command_by_code_[c.code] = &c;
  command_by_name_[c.name] = &c;
  if (!c.request_abbr.empty()) command_by_name_[c.request_abbr] = &c;
  if (!c.answer_abbr.empty()) command_by_name_[c.answer_abbr] = &c;
}

void dictionary::add(application_definition def) {
  if (auto it = application_by_id_.find(def.id); it != application_by_id_.end()) {
    *const_cast<application_definition*>(it->second) = std::move(def);
    return;
  }
  const auto& a = applications_.emplace_back(std::move(def));
  application_by_id_[a.id] = &a;
}

void dictionary::merge(const dictionary& other) {
  if (&other == this) return;
  for (const auto& d : other.avps_)
    add(d);
  for (const auto& c : other.commands_)
    add(c);
  for (const auto& a : other.applications_)
    add(a);
}

const avp_definition* dictionary::find_avp_by_key(std::uint64_t k) const noexcept {
  auto it = avp_by_code_.find(k);
  return it == avp_by_code_.end() ? nullptr : it->second;
}

const avp_definition* dictionary::find_avp(std::string_view name) const noexcept {
  auto it = avp_by_name_.find(name);
  return it == avp_by_name_.end() ? nullptr : it->second;
}

const command_definition* dictionary::find_command(std::uint32_t code) const noexcept {
  auto it = command_by_code_.find(code);
  return it == command_by_code_.end() ? nullptr : it->second;
}

const command_definition* dictionary::find_command(std::string_view name) const noexcept {
  auto it = command_by_name_.find(name);
  return it == command_by_name_.end() ? nullptr : it->second;
}

const application_definition* dictionary::find_application(std::uint32_t id) const noexcept {
  auto it = application_by_id_.find(id);
  return it == application_by_id_.end() ? nullptr : it->second;
}

namespace {

// A reader and one avp on the stack rather than an avp_range, whose iterator copies each AVP
// into itself: this runs for every AVP of every message received.
std::error_code check_range(std::span<const std::uint8_t> data, unsigned depth_left,
                            const dictionary& dict) noexcept {
  avp_reader reader(data, depth_left);
  avp a;
  std::error_code ec;
  while (reader.next(a, ec)) {
    const avp_definition* def = dict.find_avp(a.code(), a.vendor_id());
    if (def != nullptr && def->type == avp_type::grouped) {
      if (auto bad = check_range(a.data(), a.depth_left(), dict)) return bad;
    }
  }
  return ec;
}

}  // namespace

std::error_code check_avps(const message_view& msg, const dictionary& dict,
                           unsigned max_depth) noexcept {
  return check_range(msg.body(), max_depth, dict);
}

}  // namespace diampool
